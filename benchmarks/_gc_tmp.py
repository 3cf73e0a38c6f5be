import asyncio, gc, os, sys, time, tempfile, subprocess
from pathlib import Path
from handlesim.topology.config import load_config
from handlesim.topology.plan import build_plan
from handlesim.topology.runner import launch
PLAN = Path(__file__).resolve().parents[1] / "configs" / "plan.toml"
pauses = {0: [], 1: [], 2: []}; st=[0.0]; sizes={0:[],1:[],2:[]}
def on_gc(phase, info):
    if phase == "start": st[0] = time.perf_counter(); sizes[info["generation"]].append(len(gc.get_objects(info["generation"])) if os.environ.get("COUNT") else 0)
    else: pauses[info["generation"]].append(time.perf_counter() - st[0])
async def main():
    plan = build_plan(load_config(PLAN).with_overrides(base_port=0))
    with tempfile.TemporaryDirectory() as d:
        state = Path(d) / "state"
        topology = await launch(plan, state, store_kind="memory", metrics_port=0)
        t = os.environ.get("GCT")
        if t: gc.set_threshold(*map(int, t.split(",")))
        gc.callbacks.append(on_gc)
        proc = await asyncio.create_subprocess_exec(".venv/bin/handlesim", "bench", "--state-dir", str(state), "--mode", os.environ.get("MODE","direct"), "--rate", os.environ.get("RATE","3000"), "--duration", "8", "--warmup", "2", "--no-baseline", *os.environ.get("EXTRA","").split(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        out, _ = await proc.communicate()
        gc.callbacks.remove(on_gc)
        print("\n".join(l for l in out.decode().splitlines() if l.startswith("| direct") or l.startswith("| resolver") or "enterprise |" in l or "resolver |" in l))
        await topology.stop()
    for g, d in pauses.items():
        print(f"gen{g}: {len(d)} passes, {sum(d)*1000:.0f} ms, longest {max(d, default=0)*1000:.1f} ms, mean objs {sum(sizes[g])/max(len(sizes[g]),1):.0f}")
asyncio.run(main())
