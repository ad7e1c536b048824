"""`make serve` end to end: the real local server (uvicorn + embedded moto) against a fake provider on loopback."""

from __future__ import annotations

import httpx

from fakes import vector
from live import LIVE_KEY, SEEN, local_env, start_local_server, stop


def test_serve_answers_the_readme_curl(live_server: str) -> None:
    body = {"model": "cohere/embed-english-v3.0", "input": ["hello", "world"], "input_type": "query"}
    r = httpx.post(f"{live_server}/v1/embeddings", json=body, headers={"X-API-Key": LIVE_KEY}, timeout=10)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["provider"] == "cohere" and len(out["data"]) == 2 and len(out["data"][0]["embedding"]) == 1024
    path, headers, sent = SEEN.last()
    assert path == "/v2/embed" and headers["Authorization"] == "Bearer co-fake"
    assert sent["input_type"] == "search_query"


def test_serve_with_bearer_on_api_prefix_reaches_openai(live_server: str) -> None:
    r = httpx.post(
        f"{live_server}/api/v1/embeddings",
        json={"model": "openai/text-embedding-3-small", "input": ["a"]},
        headers={"Authorization": f"Bearer {LIVE_KEY}"},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    assert SEEN.last()[0] == "/v1/embeddings"
    assert r.json()["data"][0]["embedding"] == vector(0, 1536)


def test_serve_prints_a_fresh_key_and_stops_cleanly_on_ctrl_c() -> None:
    proc, base = start_local_server(local_env(None))
    assert httpx.get(f"{base}/v1/embeddings", timeout=5).status_code == 405
    code, err = stop(proc)
    assert code == 0, err
    assert "Dev API key (plan ultra): er-" in err
