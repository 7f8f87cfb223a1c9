"""The ranker's settings file in a bundle (``ranker/two_stage.json``), typed.

Training writes it (:meth:`training.models.two_stage.TwoStageRecommender.export`);
retrieval reads how training generated and merged candidates (so serving merges them
the same way), ranking reads the source names its features expect, and the gateway reads
how many candidates the ranker was trained and evaluated with. Extra keys (the full
training config, hyper-parameters) are kept in the file for people and ignored here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

from shared.contracts import bundle_layout as L
from shared.contracts.errors import BundleError

if TYPE_CHECKING:
    from shared.contracts.bundle import Bundle


class CandidateSettings(BaseModel):
    """How training generated and merged each user's candidates."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    depth: int = Field(ge=1, description="Candidates each source retrieves per user.")
    max_candidates: int = Field(ge=1, description="Merged candidates kept per user.")
    min_candidates: int = Field(ge=0, description="Fill sources top the list up to this.")
    fill_sources: tuple[str, ...] = Field(description="Last-resort sources (popularity).")
    history_window: int = Field(ge=1, description="Recent items for the content source.")


class RankerConfig(BaseModel):
    """The part of ``ranker/two_stage.json`` the services rely on."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    source_names: tuple[str, ...] = Field(min_length=1)
    config: CandidateSettings

    @classmethod
    def of(cls, bundle: Bundle) -> RankerConfig:
        """Read and check a bundle's ranker settings (BundleError saying what is wrong)."""
        raw = bundle.load_json(L.RANKER_CONFIG)
        try:
            return cls.model_validate(raw)
        except PydanticValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5]
            )
            raise BundleError(
                f"bundle {bundle.version}: {L.RANKER_CONFIG} is not a ranker config "
                f"({problems}); retrain with `hybridrec train`"
            ) from exc
