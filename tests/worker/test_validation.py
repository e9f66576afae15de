"""Admin access and up-front validation: nothing reaches the queue unless it is valid."""

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings

from .conftest import TOKEN


@pytest.fixture
def client(job_home):
    # an unreachable broker: any request that got as far as queueing would answer 503, not 422
    settings = Settings(home=job_home, broker_url="redis://127.0.0.1:1/0", admin_token=TOKEN)
    with TestClient(create_app(settings)) as c:
        yield c


AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"}, {"Authorization": TOKEN},
                                     {"Authorization": f"Basic {TOKEN}"}])
def test_admin_endpoints_refuse_missing_and_wrong_tokens(client, headers):
    for method, url in [("GET", "/train-jobs"), ("POST", "/train-jobs"), ("GET", "/datasets"),
                        ("DELETE", "/train-jobs/job-20260101-000000-abcdef"),
                        ("POST", "/train-jobs/job-20260101-000000-abcdef/promote")]:
        r = client.request(method, url, headers=headers, json={"dataset": "shoes"})
        assert r.status_code == 401 and r.headers["WWW-Authenticate"] == "Bearer"
        assert TOKEN not in r.text


def test_admin_is_off_without_a_configured_token(job_home):
    with TestClient(create_app(Settings(home=job_home))) as c:
        r = c.get("/train-jobs", headers=AUTH)
        assert r.status_code == 403 and "HYBRIDGAN_ADMIN_TOKEN" in r.json()["detail"]
        assert "Admin is off" in c.get("/admin").text


@pytest.mark.parametrize("body, words", [
    ({"dataset": "nope"}, "unknown dataset"),
    ({"dataset": "../../etc"}, "plain name"),
    ({"dataset": "/etc/passwd"}, "plain name"),
    ({"dataset": "shoes", "preset": "huge"}, "unknown preset"),
    ({"dataset": "shoes", "overrides": {"train.lr_g": "fast"}}, "not a valid float"),
    ({"dataset": "shoes", "overrides": {"model.bogus": 1}}, "unknown field"),
    ({"dataset": "shoes", "overrides": {"data.path": "/etc"}}, "cannot be overridden"),
    ({"dataset": "shoes", "epochs": 0}, "greater than 0"),
    ({"dataset": "shoes", "epochs": 1e9}, "at most"),
    ({"dataset": "shoes", "resume_from": "job-20260101-000000-abcdef"}, "no checkpoint"),
    ({"dataset": "shoes", "resume_from": "../x"}, "invalid job id"),
    ({"dataset": "shoes", "gpu": 3}, "gpu"),
])
def test_invalid_job_requests_are_refused_before_anything_is_queued(client, job_home, body, words):
    r = client.post("/train-jobs", json=body, headers=AUTH)
    assert r.status_code == 422 and words in r.text, r.text
    assert not (job_home / "runs").exists() or not any((job_home / "runs").iterdir())


def test_submission_while_the_broker_is_down_is_a_503_and_the_job_says_why(client, job_home):
    r = client.post("/train-jobs", json={"dataset": "shoes", "preset": "tiny"}, headers=AUTH)
    assert r.status_code == 503 and "not reachable" in r.json()["detail"] and r.headers["Retry-After"]
    jobs = client.get("/train-jobs", headers=AUTH).json()["jobs"]
    assert len(jobs) == 1 and jobs[0]["status"] == "failed" and "could not be queued" in jobs[0]["error"]


def test_unknown_jobs_are_404(client):
    assert client.get("/train-jobs/job-20260101-000000-abcdef", headers=AUTH).status_code == 404
    assert client.get("/train-jobs/..%2F..%2Fetc", headers=AUTH).status_code == 404
