"""The Python side of the orchestrator that runs on Ray: dispatcher, step runner, bridge."""
