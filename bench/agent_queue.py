"""Agent-queue bench: 10 callers wait for 3 agents over real SIP, and a supervisor watches the console meanwhile.

    .venv/bin/python bench/agent_queue.py [--callers 10] [--agents 3] [--talk-s 5] [--workers 4 --max-calls 3]
                                          [--rasa-url URL] [--json out.json]

`voicebot serve --workers N` (Kamailio in front of N SIP workers) runs in queue mode with a directory of 3 agents
(English and French, every queue open 24/7). pjsua2 holds 4 calls per process, and the worker of a queued caller
needs one of them for the call that briefs the agent: with `--workers 3 --max-calls 4` the worker that takes 4
of the 10 callers can never ring an agent for them (PJ_ETOOMANY). The default, 4 workers of at most 3 calls
(`sip.max_calls: 3`), always leaves a worker a slot for the briefing. The callers are tests/support/pj_phone.py
processes, started `--ramp-s` apart: each presses 0 once the greeting is over (the live transfer rules send it
to general-en) and waits with the queue's announcements and hold music. The ACD offers each waiting call to the
longest-idle available agent; the caller's worker rings the agent's phone (a pj_phone that answers at once),
speaks the briefing, then REFER/Replaces joins caller and agent. The bench plays the agents: `--talk-s` after
the connection the caller hangs up, and the agent presses "Call finished" on the desk (`Acd.call_ended`: after the
REFER the worker is out of the call, so nothing else frees the agent; wrap-up time 1 s) and gets the next caller.

Measured per call, in epoch seconds on one machine (the ACD's times; the workers' log stamps, in ms; the
phones' monotonic stamps shifted by time.time() - time.monotonic()): the caller's key press, the transfer
decision (the worker's "rule ... fired" line, when it emits TransferRequested), queue entry (the ACD's
enqueued_at: the worker first says "please hold on, I am putting you through"), the ACD's offer, the agent's
phone ringing (its "incoming" event), the caller connected to the agent (the agent's phone "replaced" event:
the caller's INVITE/Replaces taken); p50/p95 over all calls. Meanwhile a supervisor (created with UserStore.add)
loads the live page (GET /), waits for the first Server-Sent Events message of /events and loads the calls
page, one after the other every `--console-period-s`; the same rounds on the idle hotline are the baseline.

Ports: SIP 5700 (Kamailio) / 5701.. (workers) / 5711.. (agents) / 5721.. (callers); RTP 61000.. (workers,
1000 each) and 52000.. (phones, 100 each); console 5790; Rasa 5305 with its action server on 5355 (started and
stopped by the bench unless --rasa-url names a running one). Files (config, logs, events, state) go to
.cache/bench-queue/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import sys
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from queue_console import ConsoleProbe, ConsoleTimes
from queue_phones import Agent, CallerRun, PhoneProcess, monotonic_to_epoch, serve_caller
from queue_report import call_rows, console_rows, decisions, failed_rings, join_times, print_rows, read_acd_calls
from sip_procs import ServeError, ServeProcess, UsageSampler, cpu_seconds

from dialogue.acd import Acd
from dialogue.rasa_service import RasaService
from voicebot.cli import progress
from voicebot.compose import rasa_service
from voicebot.config import REPO_ROOT, load_settings
from voicebot.console.users import UserStore

BENCH_DIR = REPO_ROOT / ".cache" / "bench-queue"
RASA_PORT, RASA_ACTIONS_PORT, RASA_TOKEN = 5305, 5355, "voicebot-bench"
SUPERVISOR = "bench-supervisor"
WORKER_RTP, PHONE_RTP = 61000, 52000  # 61000..: above the kernel's ephemeral ports; no test uses either
GREETING_S = 6.5  # the caller presses 0 this long after the bot answers
BASELINE_ROUNDS = 20
WRAP_UP_S = 1.0  # after "Call finished" (the directory wants a positive wrap-up time)


def agents_yaml(agent_ports: list[int]) -> str:
    always = {day: "00:00-24:00" for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    queues = [
        {"name": f"{kind}-{language}", "language": language, "topics": [topic], "hours": "always",
         "ring_timeout_s": 10, "wrap_up_s": WRAP_UP_S}
        for kind, topic in (("general", "general"), ("civil-status", "civil_status"))
        for language in ("en", "fr")
    ]  # fmt: skip
    queues.append({"name": "emergency", "language": "fr", "topics": ["emergency"], "hours": "always"})
    agents = [
        {"id": f"agent{i}", "name": f"Agent {i}", "sip_uri": f"sip:agent{i}@127.0.0.1:{port}",
         "languages": ["en", "fr"], "topics": ["general"], "status": "available"}
        for i, port in enumerate(agent_ports, start=1)
    ]  # fmt: skip
    directory = {"timezone": "Europe/Paris", "hours": {"always": always}, "queues": queues, "agents": agents}
    return yaml.safe_dump(directory, sort_keys=False)


def write_config(args: argparse.Namespace, rasa_token: str) -> Path:
    config = {
        "cache_dir": str(BENCH_DIR),  # run/ (worker and Kamailio files) apart from other `voicebot serve`s
        "agents_file": str(BENCH_DIR / "agents.yaml"),
        "dialogue": {"auth_token": rasa_token, "timeout_s": 15.0},
        "sip": {"worker_base_port": args.port + 1, "rtp_port": WORKER_RTP, "invite_rate_per_s": 20.0,
                "transfer_mode": "queue", "max_calls": args.max_calls},
        "console": {"port": args.console_port},
    }  # fmt: skip
    path = BENCH_DIR / "voicebot.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def fresh_state() -> Path:
    """A new operations database per run: no earlier calls in the ACD, no earlier callers in the rules' counts."""
    state = BENCH_DIR / "state"
    shutil.rmtree(state, ignore_errors=True)
    state.mkdir(parents=True)
    for stale in (BENCH_DIR / "run").glob("worker-*.log"):
        stale.unlink()  # serve appends to them
    os.environ["VOICEBOT_STATE_DIR"] = str(state)  # serve, its workers and a Rasa started here inherit it
    return state


def start_rasa(args: argparse.Namespace) -> tuple[str, str, RasaService | None]:
    """(url, token, the service if the bench started it)."""
    if args.rasa_url:
        external = rasa_service(load_settings().replace("dialogue", rasa_url=args.rasa_url))
        if not external.is_up():
            raise ServeError(f"Rasa is not reachable at {args.rasa_url} (set VOICEBOT_RASA_TOKEN if its token is "
                             "not the default, or leave out --rasa-url)")  # fmt: skip
        token = external.auth_token
        return args.rasa_url, token, None
    service = RasaService(REPO_ROOT / "dialogue" / "rasa", load_settings().dialogue.venv_dir, port=RASA_PORT,
                          auth_token=RASA_TOKEN, log_path=BENCH_DIR / "rasa.log",
                          actions_port=RASA_ACTIONS_PORT)  # fmt: skip
    if not service.model_is_fresh():
        progress("the dialogue model is missing or older than its data: training it first")
        service.train(progress)
    progress(f"starting Rasa at {service.url} (30-80 s)")
    started = service.ensure_running(timeout=240)
    return service.url, RASA_TOKEN, service if started else None


def machine_busy_s() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    ticks = os.sysconf("SC_CLK_TCK")
    return (sum(fields) - idle) / ticks, sum(fields) / ticks


def call_finished(acd: Acd, agent_id: str) -> None:
    """The desk's "Call finished": the agent's connected call ends in the ACD; wrap-up, then available."""
    calls = acd.snapshot()["calls"]  # connected calls in the order they were connected: the agent's latest last
    call = next((c for c in reversed(calls) if c["agent_id"] == agent_id and c["state"] == "connected"), None)
    if call is not None:
        acd.call_ended(call["call_id"])


async def run_calls(args: argparse.Namespace, acd: Acd, agents: list[Agent], console: ConsoleProbe,
                    phones: list[PhoneProcess]) -> tuple[list[CallerRun], ConsoleTimes]:  # fmt: skip
    """Place the calls, play the agents until every caller is served (or gave up), sample the console meanwhile."""
    runs: list[CallerRun] = []
    tasks = []
    stop_console = asyncio.Event()
    console_task = asyncio.create_task(console.sample_until(stop_console, args.console_period_s))
    uri = f"sip:voicebot@127.0.0.1:{args.port}"
    for i in range(args.callers):
        port = args.port + 21 + i
        phone = PhoneProcess(f"caller{i + 1:02d}", "call", port, PHONE_RTP + 100 * (args.agents + i),
                             ["--dtmf", f"{GREETING_S}:0", "--max-s", str(args.max_wait_s + 60)], uri=uri)  # fmt: skip
        phones.append(phone)
        await phone.start()
        run = CallerRun(phone)
        runs.append(run)
        finish = lambda agent_id: call_finished(acd, agent_id)  # noqa: E731
        tasks.append(asyncio.create_task(serve_caller(run, agents, finish, args.talk_s, args.max_wait_s)))
        await asyncio.sleep(args.ramp_s)
    await asyncio.gather(*tasks)
    stop_console.set()
    return runs, await console_task


async def bench(args: argparse.Namespace, rasa_url: str, rasa_token: str, state: Path) -> dict[str, Any]:
    db_path = state / "operations.db"
    password = secrets.token_urlsafe(16)
    UserStore(db_path).add(SUPERVISOR, "supervisor", password)
    agent_ports = [args.port + 11 + i for i in range(args.agents)]
    (BENCH_DIR / "agents.yaml").write_text(agents_yaml(agent_ports))
    agents = [
        Agent(f"agent{i}", PhoneProcess(f"agent{i}", "answer", port, PHONE_RTP + 100 * (i - 1), ["--max-s", "3600"]))
        for i, port in enumerate(agent_ports, start=1)
    ]
    phones = [agent.phone for agent in agents]  # the callers' join them: all are stopped, whatever happens
    events_path = BENCH_DIR / "events.jsonl"
    events_path.unlink(missing_ok=True)
    serve_args = ["--config", str(write_config(args, rasa_token)), "--workers", str(args.workers), "--port",
                  str(args.port), "--rasa-url", rasa_url, "--events", str(events_path)]  # fmt: skip
    serve = ServeProcess(serve_args, BENCH_DIR / "serve.log")
    offset_before = monotonic_to_epoch()
    try:
        for phone in phones:
            await phone.start()
        progress(f"starting voicebot serve with {args.workers} workers behind Kamailio, {args.max_calls} calls each")
        await serve.start(args.ready_timeout_s)
        async with ConsoleProbe(f"http://127.0.0.1:{args.console_port}", SUPERVISOR, password) as console:
            progress(f"console baseline: {BASELINE_ROUNDS} rounds on the idle hotline")
            idle = await console.sample_rounds(BASELINE_ROUNDS, args.console_period_s)
            result = await measured_calls(args, serve, Acd(db_path), agents, console, phones)
    finally:
        for phone in phones:
            await phone.stop()
        code = await serve.stop()
    calls = read_acd_calls(db_path)
    worker_logs = sorted((BENCH_DIR / "run").glob("worker-*.log"))
    return result | {
        "times": join_times(calls, agents, result["runs"], decisions(worker_logs)), "calls": calls, "agents": agents,
        "idle": idle, "serve_exit": code, "clock_drift_ms": (monotonic_to_epoch() - offset_before) * 1000,
        "failed_rings": failed_rings(worker_logs),
    }  # fmt: skip


async def measured_calls(args: argparse.Namespace, serve: ServeProcess, acd: Acd, agents: list[Agent],
                         console: ConsoleProbe, phones: list[PhoneProcess]) -> dict[str, Any]:  # fmt: skip
    """The calls, with the CPU and load they cost."""
    sampler = UsageSampler(serve.pid)
    sampler.start()
    serve_cpu, machine = cpu_seconds(serve.pid), machine_busy_s()
    load_start = os.getloadavg()[0]
    progress(f"{args.callers} callers, {args.agents} agents, {args.talk_s:g} s per call")
    runs, busy = await run_calls(args, acd, agents, console, phones)
    usage = await sampler.stop()
    machine_after = machine_busy_s()
    return {
        "runs": runs, "busy": busy, "usage": usage, "load": (load_start, os.getloadavg()[0]),
        "serve_cpu_pct": (cpu_seconds(serve.pid) - serve_cpu) / usage.window_s * 100,
        "machine_pct": (machine_after[0] - machine[0]) / (machine_after[1] - machine[1]) * 100,
    }  # fmt: skip


def report(args: argparse.Namespace, result: dict[str, Any]) -> None:
    runs, calls, usage = result["runs"], result["calls"], result["usage"]
    connected = sum(1 for run in runs if run.connected_at is not None)
    per_worker: dict[str, int] = {}
    for call in calls:
        per_worker[call.call_id.split("-")[0]] = per_worker.get(call.call_id.split("-")[0], 0) + 1
    print(
        f"\nAgent queue bench: {args.callers} callers {args.ramp_s:g} s apart, {args.agents} agents, "
        f"{args.talk_s:g} s per call after the connection, `voicebot serve --workers {args.workers}` behind Kamailio "
        f"(sip.max_calls {args.max_calls}), "
        f"{os.cpu_count()} CPUs, load average {result['load'][0]:.1f} at the first call and {result['load'][1]:.1f} "
        f"at the last; whole machine {result['machine_pct']:.0f} % busy over the calls\n"
    )
    print_rows(call_rows(result["times"], runs, result["agents"], WRAP_UP_S))
    spread = ", ".join(f"{name} {count}" for name, count in sorted(per_worker.items()))
    failures = "; ".join(f"{n} x {why}" for why, n in result["failed_rings"].most_common()) or "none"
    print(f"\ncallers connected to an agent: {connected}/{args.callers}; calls per worker: {spread}; "
          f"agents' phones not reached: {failures}")  # fmt: skip
    for run in runs:
        for error in run.errors:
            print(f"  {error}")
    print(f"\nconsole, logged in as a supervisor, each page in turn every {args.console_period_s:g} s:\n")
    busy = f"{args.callers} callers queued/served"
    print_rows(console_rows("idle", result["idle"]) + console_rows(busy, result["busy"]))
    for error in (result["idle"].errors + result["busy"].errors)[:5]:
        print(f"  console error: {error}")
    print(
        f"\nCPU over the calls (% of one core): workers {usage.workers_cpu_pct:.0f}, Kamailio "
        f"{usage.kamailio_cpu_pct:.0f}, serve with the console {result['serve_cpu_pct']:.0f}; "
        f"clock offset drift {result['clock_drift_ms']:.2f} ms; serve exit {result['serve_exit']}"
    )


def dump_json(path: Path, result: dict[str, Any]) -> None:
    out = {
        "calls": [vars(t.acd) | {"decided_at": t.decided_at, "rang_at": t.rang_at, "replaced_at": t.replaced_at,
                                 "key_pressed_at": t.key_pressed_at} for t in result["times"]],
        "callers": [{"name": r.phone.name, "agent": r.agent_id, "transfer_at": r.transfer_at,
                     "connected_at": r.connected_at, "finished_at": r.finished_at, "errors": r.errors}
                    for r in result["runs"]],
        "console_ms": {"idle": result["idle"].ms, "busy": result["busy"].ms},
    }  # fmt: skip
    path.write_text(json.dumps(out, indent=1))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--callers", type=int, default=10, help="callers (default 10)")
    parser.add_argument("--agents", type=int, default=3, help="agents (default 3)")
    parser.add_argument("--workers", type=int, default=4, help="SIP workers behind Kamailio (default 4)")
    parser.add_argument("--max-calls", type=int, default=3, help="sip.max_calls per worker (default 3, see above)")
    parser.add_argument("--talk-s", type=float, default=5.0, help="caller and agent talk this long (default 5)")
    parser.add_argument("--ramp-s", type=float, default=0.3, help="delay between callers (default 0.3)")
    parser.add_argument("--max-wait-s", type=float, default=240.0, help="a caller gives up after this long")
    parser.add_argument("--console-period-s", type=float, default=0.5, help="pause between console rounds")
    parser.add_argument("--rasa-url", help="a running Rasa server (default: start one on 5305)")
    parser.add_argument("--port", type=int, default=5700, help="SIP port callers dial (default 5700)")
    parser.add_argument("--console-port", type=int, default=5790, help="console port (default 5790)")
    parser.add_argument("--ready-timeout-s", type=float, default=240.0, help="wait this long for serve to be ready")
    parser.add_argument("--json", type=Path, help="also write the raw times here")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    state = fresh_state()
    try:
        rasa_url, rasa_token, started = start_rasa(args)
    except ServeError as exc:
        print(f"bench/agent_queue.py: error: {exc}", file=sys.stderr)
        return 2
    try:
        result = asyncio.run(bench(args, rasa_url, rasa_token, state))
    except ServeError as exc:
        print(f"bench/agent_queue.py: error: {exc}", file=sys.stderr)
        return 1
    finally:
        if started is not None:
            progress("stopping the Rasa server started by the bench")
            started.stop()
    report(args, result)
    if args.json:
        dump_json(args.json, result)
    served = all(run.connected_at is not None for run in result["runs"])
    return 0 if served and result["serve_exit"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
