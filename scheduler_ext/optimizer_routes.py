"""The GPU-mix optimizer's HTTP routes, over the extender's TargetStore:

- GET  /v1/optimizer/targets/{namespace}/{model}: the targets as Prometheus text (the
  PodAutoscalers' external metric);
- PUT  /v1/optimizer/targets/{namespace}/{model}: set the replicas per GPU type by hand;
- POST /v1/optimizer/workload/{namespace}/{model}: solve the Mélange ILP for a workload (in a
  worker thread) and store the answer as the targets.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from brix.logs import kv
from scheduler_ext.model import WireError, loads
from scheduler_ext.solvers import melange
from scheduler_ext.solvers.profiles import InputError
from scheduler_ext.targets import TargetStore

log = logging.getLogger(__name__)

TARGETS_KEY = web.AppKey("targets", TargetStore)


async def get_targets(request: web.Request) -> web.Response:
    targets = request.app[TARGETS_KEY]
    ns, model = request.match_info["namespace"], request.match_info["model"]
    text = targets.prometheus_text(ns, model)
    if text is None:
        return web.Response(text=f"no GPU-mix targets for {ns}/{model}; POST /v1/optimizer/workload/{ns}/{model}\n",
                            status=404)
    return web.Response(text=text, content_type="text/plain")


async def post_workload(request: web.Request) -> web.Response:
    targets = request.app[TARGETS_KEY]
    ns, model = request.match_info["namespace"], request.match_info["model"]
    try:
        doc = loads(await request.read())
        problem = targets.problem_from_workload(model, doc)
        melange.validate(problem)
    except (WireError, InputError, melange.ProblemError, ValueError) as exc:
        return web.json_response({"error": str(exc)}, status=400)
    solution = await asyncio.get_running_loop().run_in_executor(None, melange.solve, problem)
    if not solution.feasible:
        return web.json_response({"error": solution.reason}, status=422)
    target = targets.set_from_solution(ns, model, problem, solution)
    kv(log, "gpu mix targets", model=f"{ns}/{model}", replicas=target.replicas, cost=round(target.cost, 4))
    return web.json_response({"replicas": target.replicas, "cost": target.cost,
                              "solve_ms": round(solution.solve_ms, 2)})


async def put_targets(request: web.Request) -> web.Response:
    targets = request.app[TARGETS_KEY]
    ns, model = request.match_info["namespace"], request.match_info["model"]
    try:
        doc = loads(await request.read())
    except WireError as exc:
        return web.json_response({"error": str(exc)}, status=400)
    replicas = doc.get("replicas")
    if not isinstance(replicas, dict) or not all(isinstance(v, int) and v >= 0 for v in replicas.values()):
        return web.json_response({"error": "body needs replicas: {gpu_type: non-negative integer}"}, status=400)
    target = targets.set_replicas(ns, model, replicas)
    return web.json_response({"replicas": target.replicas, "cost": target.cost})


def add_routes(app: web.Application, targets: TargetStore) -> None:
    app[TARGETS_KEY] = targets
    app.router.add_get("/v1/optimizer/targets/{namespace}/{model}", get_targets)
    app.router.add_put("/v1/optimizer/targets/{namespace}/{model}", put_targets)
    app.router.add_post("/v1/optimizer/workload/{namespace}/{model}", post_workload)
