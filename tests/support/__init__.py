"""Helpers the tests share: private Redis servers, service processes, tiny datasets."""
