"""Simulated OpenAI-compatible provider: a real HTTP server with scripted latency and faults.

Modules: `profile` (SimProfile, SimConfig, decide; pure), `presets` (instant/fast/cheap/premium),
`config` (YAML loading), `request` (body parsing; which tool a request gets a call of:
tool_choice, and the `call:<name>` rule for "auto"), `answer` (text, JSON or tool call) and
`schema_value` (values valid against a JSON schema), `server` (SimServer, run_sim), `drill`
(fault drills: a real router in front of real sims under load; the drill tests and
`bench/routing.py --drill` use it). See `server.py` for the entry points.
Nothing is imported here, so the pure modules stay importable without aiohttp or pydantic.
"""
