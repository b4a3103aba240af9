"""Simulated OpenAI-compatible provider: a real HTTP server with scripted latency and faults.

Modules: `profile` (SimProfile, SimConfig, decide; pure), `presets` (instant/fast/cheap/premium),
`config` (YAML loading), `server` (SimServer, run_sim), `drill` (fault drills: a real router in
front of real sims under load; the drill tests and `bench/routing.py --drill` use it). See
`server.py` for the entry points.
Nothing is imported here, so the pure modules stay importable without aiohttp or pydantic.
"""
