# Redis from Debian, for machines without an image registry (the compose file's default
# is redis:7-alpine): `docker build -f deploy/redis.Dockerfile --build-arg
# BASE_IMAGE=hybridrec-base:bookworm -t hybridrec-redis:bookworm deploy`
# (make compose-test does this when redis:7-alpine cannot be pulled).
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
RUN apt-get update \
    && apt-get install -y --no-install-recommends redis-server \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /data && chown redis:redis /data
WORKDIR /data
USER redis
EXPOSE 6379
CMD ["redis-server", "--dir", "/data", "--protected-mode", "no"]
