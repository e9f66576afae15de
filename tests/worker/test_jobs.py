import json

import pytest

from model.jobs import read_job, update_job

from .conftest import TOKEN, wait_job

TINY = {"dataset": "shoes", "preset": "tiny"}
# The main flow, cancelling and SIGKILL run on both brokers; the rest on Redis only, to keep CI short.
redis_only = pytest.mark.parametrize("broker", ["redis"], indirect=True)


def test_a_job_trains_succeeds_and_its_checkpoint_is_hot_loaded(api, workers):
    workers()
    r = api.post("/train-jobs", json={**TINY, "epochs": 1, "publish": True})
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    assert r.json()["url"] == f"/train-jobs/{job_id}"
    wait_job(api, job_id, lambda j: j["status"] in ("running", "succeeded"))
    job = wait_job(api, job_id, lambda j: j["status"] in ("succeeded", "failed"))
    assert job["status"] == "succeeded", job["error"]
    assert job["progress"]["step"] == job["progress"]["total_steps"] and job["progress"]["img_per_s"] > 0
    assert job["checkpoints"] and job["latest_losses"]["Loss/D"] is not None
    assert api.get(job["latest_sample"]).headers["content-type"] == "image/png"
    version = job["published"]["version"]
    # the API hot-loads the published checkpoint with no restart
    assert wait_job(api, job_id, lambda j: api.get("/models").json()["current"] is not None)
    assert api.get("/models").json()["current"]["version"] == version
    assert api.post("/generate", json={"class": "Boot"}).headers["X-Model-Version"] == version
    rows = api.get(f"/train-jobs/{job_id}/metrics").json()["rows"]
    assert len(rows) >= 2 and all("Loss/G" in r for r in rows)
    listed = api.get("/train-jobs").json()["jobs"]
    assert [j["id"] for j in listed] == [job_id] and listed[0]["status"] == "succeeded"


def test_cancel_a_running_job_checkpoints_and_stops(api, workers):
    workers()
    job_id = api.post("/train-jobs", json={**TINY, "epochs": 200}).json()["id"]
    wait_job(api, job_id, lambda j: j["status"] == "running" and (j["progress"] or {}).get("step", 0) >= 3)
    r = api.delete(f"/train-jobs/{job_id}")
    assert r.status_code == 200 and r.json()["cancel_requested"]
    job = wait_job(api, job_id, lambda j: j["status"] in ("cancelled", "failed", "succeeded"), timeout=30)
    assert job["status"] == "cancelled"
    assert job["result"]["step"] < job["progress"]["total_steps"]
    assert f"step-{job['result']['step']:09d}" in job["checkpoints"]  # it checkpointed where it stopped


@redis_only
def test_a_cancelled_queued_job_never_starts(api, workers, job_home):
    job_id = api.post("/train-jobs", json={**TINY, "epochs": 1}).json()["id"]  # no worker yet
    assert api.delete(f"/train-jobs/{job_id}").json()["status"] == "cancelled"
    workers()
    follow = api.post("/train-jobs", json={**TINY, "epochs": 0.2}).json()["id"]  # proves the worker ran
    wait_job(api, follow, lambda j: j["status"] == "succeeded")
    job = read_job(job_home, job_id)
    assert job["status"] == "cancelled" and job["attempts"] == 0 and job["started_at"] is None


def test_sigkill_mid_job_then_a_new_worker_resumes_from_the_checkpoint(api, workers, job_home):
    w = workers()
    r = api.post("/train-jobs", json={**TINY, "epochs": 6, "overrides": {"train.ckpt_every": 5}})
    job_id = r.json()["id"]
    wait_job(api, job_id, lambda j: (j["progress"] or {}).get("step", 0) >= 12)
    w.kill()
    killed = read_job(job_home, job_id)
    assert killed["status"] == "running" and killed["attempts"] == 1
    workers()  # a new worker finds the orphaned job and resumes it
    job = wait_job(api, job_id, lambda j: j["status"] in ("succeeded", "failed"))
    assert job["status"] == "succeeded" and job["attempts"] == 2
    steps = [json.loads(l)["step"] for l in (job_home / "runs" / job_id / "metrics.jsonl").read_text().splitlines()
             if "event" not in l]
    assert sorted(set(steps)) == list(range(1, job["result"]["step"] + 1))  # every step ran
    assert len(steps) - len(set(steps)) < 5  # at most the steps since the last checkpoint ran twice


@redis_only
def test_a_job_whose_worker_always_dies_fails_with_a_reason(api, workers, job_home):
    job_id = api.post("/train-jobs", json={**TINY, "epochs": 1}).json()["id"]
    update_job(job_home, job_id, lambda j: j.update(attempts=3))  # as if three workers had died on it
    workers()
    job = wait_job(api, job_id, lambda j: j["status"] in ("failed", "succeeded"))
    assert job["status"] == "failed" and "died each time" in job["error"]


@redis_only
def test_promote_a_checkpoint_of_a_job(api, workers):
    workers()
    job_id = api.post("/train-jobs", json={**TINY, "epochs": 1}).json()["id"]
    job = wait_job(api, job_id, lambda j: j["status"] == "succeeded")
    ckpt = job["checkpoints"][0]
    r = api.post(f"/train-jobs/{job_id}/promote", json={"checkpoint": ckpt})
    assert r.status_code == 200 and r.json()["serving"] == f"{job_id}-{ckpt}"
    assert api.post(f"/train-jobs/{job_id}/promote", json={"checkpoint": "step-999999999"}).status_code == 404
    assert api.post(f"/train-jobs/{job_id}/promote", json={"checkpoint": "../../x"}).status_code == 404


@redis_only
def test_a_diverging_job_stops_with_the_reason_and_publishes_nothing(api, workers, job_home):
    # The paper's failed lambda_GP = 3 (sec. 4.3), pushed by a high learning rate to blow up quickly.
    workers()
    r = api.post("/train-jobs", json={**TINY, "preset": "tiny+gp3", "epochs": 8, "publish": True,
                                      "overrides": {"train.lr_g": 0.05}})
    job = wait_job(api, r.json()["id"], lambda j: j["status"] in ("failed", "succeeded"))
    assert job["status"] == "failed" and "diverged at step" in job["error"]
    assert job["published"] is None and not (job_home / "models" / "current.json").exists()
    import re
    bad_from = int(re.search(r"diverged at step (\d+)", job["error"]).group(1)) - 2  # patience: 3 bad steps
    assert all(int(c.split("-")[1]) < bad_from for c in job["checkpoints"])  # nothing saved once it went bad


@redis_only
def test_the_job_record_survives_an_api_restart(job_home, broker, queue, workers):
    from fastapi.testclient import TestClient
    from app.main import create_app
    from app.settings import Settings

    workers()
    settings = Settings(home=job_home, broker_url=broker, admin_token=TOKEN, poll_seconds=0.1)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with TestClient(create_app(settings), headers=headers) as first:
        job_id = first.post("/train-jobs", json={**TINY, "epochs": 3}).json()["id"]
        wait_job(first, job_id, lambda j: (j["progress"] or {}).get("step", 0) >= 2)
    with TestClient(create_app(settings), headers=headers) as second:  # a new API process, same run store
        seen = second.get(f"/train-jobs/{job_id}").json()
        assert seen["status"] in ("running", "succeeded") and seen["progress"]["step"] >= 2
        job = wait_job(second, job_id, lambda j: j["status"] == "succeeded")
        assert job["progress"]["step"] == job["progress"]["total_steps"]


@redis_only
def test_a_full_disk_during_a_checkpoint_fails_the_job_and_keeps_the_previous_checkpoint(api, workers, job_home):
    # checkpoint writes: step 10's generator, step 10's state, then step 20's generator hits ENOSPC
    workers(HYBRIDGAN_FAILPOINTS="checkpoint=enospc@3")
    job_id = api.post("/train-jobs", json={**TINY, "epochs": 4, "publish": True}).json()["id"]
    job = wait_job(api, job_id, lambda j: j["status"] in ("failed", "succeeded"))
    assert job["status"] == "failed" and "No space left on device" in job["error"]
    assert job["checkpoints"] == ["step-000000010"] and job["published"] is None
    from model import load_generator
    assert load_generator(job_home / "runs" / job_id / "checkpoints" / "step-000000010.safetensors")[1].step == 10


@redis_only
def test_a_data_parallel_job_reports_progress_and_cancels_cleanly(api, workers, job_home):
    # HYBRIDGAN_WORKER_NPROC=2: the worker runs each job under torchrun in 2 gloo processes
    workers(HYBRIDGAN_WORKER_NPROC="2")
    job_id = api.post("/train-jobs", json={**TINY, "epochs": 200}).json()["id"]
    wait_job(api, job_id, lambda j: j["status"] == "running" and (j["progress"] or {}).get("step", 0) >= 3,
             timeout=180)
    assert api.delete(f"/train-jobs/{job_id}").json()["cancel_requested"]
    job = wait_job(api, job_id, lambda j: j["status"] in ("cancelled", "failed", "succeeded"), timeout=60)
    assert job["status"] == "cancelled", job.get("error")
    assert f"step-{job['result']['step']:09d}" in job["checkpoints"]  # rank 0 checkpointed where all stopped
    run = job_home / "runs" / job_id
    assert json.loads((run / "config.json").read_text())["processes"] == 2
