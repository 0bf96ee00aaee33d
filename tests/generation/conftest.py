"""Generation tests: the scorer cache lives in a temporary folder and any network access fails the test."""

import socket

import pytest


@pytest.fixture(autouse=True)
def _offline_with_temporary_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("MINDGYM_CACHE", str(tmp_path_factory.getbasetemp() / "mindgym-cache"))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def refuse(*args, **kwargs):
        raise AssertionError("A generation test tried to open a network connection.")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
