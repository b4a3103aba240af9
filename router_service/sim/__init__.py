"""Simulated OpenAI-compatible provider: a real HTTP server with scripted latency and faults.

Modules: `profile` (SimProfile, SimConfig, decide; pure), `presets` (instant/fast/cheap/premium),
`config` (YAML loading), `server` (SimServer, run_sim). See `server.py` for the entry points.
Nothing is imported here, so the pure modules stay importable without aiohttp or pydantic.
"""
