"""Drive a Spool server exactly as PraisonAI's jobs client does, with the standard library only.

PraisonAI's client (praisonai.jobs / recipe.submit_job / JobHandle) posts a JobSubmitRequest
dumped with model_dump() -- every field, nulls included -- to POST /api/v1/runs, polls
GET /api/v1/runs/{id} until the status is terminal, reads GET /api/v1/runs/{id}/result and
cancels with POST /api/v1/runs/{id}/cancel. FastAPI's errors carry the text in "detail".

Usage: praisonai_client.py BASE_URL   (prints one JSON object with what it saw)
"""

import json
import sys
import time
import urllib.error
import urllib.request

BASE = sys.argv[1].rstrip("/")
TERMINAL = ("succeeded", "failed", "cancelled")


def call(method, path, body=None, headers=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(BASE + path, data=data, method=method)
    req.add_header("Accept", "application/json")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            raw = resp.read()
            return resp.status, dict(resp.headers), (json.loads(raw) if raw else None)
    except urllib.error.HTTPError as e:
        raw = e.read()
        return e.code, dict(e.headers), (json.loads(raw) if raw else None)


def submit(prompt, recipe_name, timeout=3600, **extra):
    # JobSubmitRequest(prompt=..., recipe_name=..., timeout=...).model_dump()
    body = {
        "prompt": prompt,
        "agent_file": None,
        "agent_yaml": None,
        "recipe_name": recipe_name,
        "recipe_config": {},
        "framework": None,
        "config": {},
        "webhook_url": None,
        "timeout": timeout,
        "session_id": None,
        "idempotency_key": None,
        "idempotency_scope": "none",
    }
    body.update(extra)
    return call("POST", "/api/v1/runs", body)


def poll(job_id, deadline=20.0):
    # JobHandle.wait(poll_interval, timeout): GET the status until it is terminal.
    end = time.time() + deadline
    while True:
        status, _, job = call("GET", "/api/v1/runs/" + job_id)
        assert status == 200, (status, job)
        if job["status"] in TERMINAL:
            return job
        if time.time() > end:
            raise SystemExit("job %s still %s" % (job_id, job["status"]))
        time.sleep(0.05)


out = {}

status, headers, job = submit("What is AI?", "echo", timeout=60)
out["submit_status"] = status
out["submit_fields"] = sorted(k for k in ("job_id", "status", "created_at", "poll_url", "stream_url") if k in job)
out["location"] = headers.get("Location")
out["retry_after"] = headers.get("Retry-After")
job_id = job["job_id"]

done = poll(job_id)
out["final_status"] = done["status"]
out["progress"] = done["progress"]
out["timeout_sec"] = done["timeout_sec"]

status, _, result = call("GET", "/api/v1/runs/%s/result" % job_id)
out["result_status"] = status
out["result"] = result["result"]
out["result_error"] = result["error"]
out["duration_is_number"] = isinstance(result["duration_seconds"], (int, float))

status, _, problem = call("POST", "/api/v1/runs/%s/cancel" % job_id)
out["cancel_finished_status"] = status
out["cancel_finished_detail"] = problem.get("detail")

# A running job: /result answers 409 until it ends; cancel answers 200.
status, _, job = submit("hold", "gated")
running_id = job["job_id"]
end = time.time() + 20
while call("GET", "/api/v1/runs/" + running_id)[2]["status"] != "running":
    if time.time() > end:
        raise SystemExit("gated job never started")
    time.sleep(0.02)
status, _, problem = call("GET", "/api/v1/runs/%s/result" % running_id)
out["result_while_running_status"] = status
out["result_while_running_detail"] = problem.get("detail")
status, _, job = call("POST", "/api/v1/runs/%s/cancel" % running_id)
out["cancel_running_status"] = status
out["cancelled_final_status"] = poll(running_id)["status"]

# Idempotency-Key header: the same key returns the same job.
s1, _, j1 = call("POST", "/api/v1/runs", {"prompt": "once", "recipe_name": "echo"}, {"Idempotency-Key": "order-123"})
s2, _, j2 = call("POST", "/api/v1/runs", {"prompt": "once", "recipe_name": "echo"}, {"Idempotency-Key": "order-123"})
out["idempotent_statuses"] = [s1, s2]
out["idempotent_same_job"] = j1["job_id"] == j2["job_id"]

# Listing with the seed's filters and errors FastAPI-style (detail).
status, _, listing = call("GET", "/api/v1/runs?status=succeeded&page=1&page_size=20")
out["list_keys"] = sorted(listing.keys())
out["list_total"] = listing["total"]
status, _, problem = call("GET", "/api/v1/runs/run_doesnotexist")
out["missing_status"] = status
out["missing_detail"] = problem.get("detail")
status, _, problem = submit("x", "echo", agent_file="agents.yaml")
out["agent_file_status"] = status

print(json.dumps(out))
