"""localflow: the workspace's own tooling (secrets, the native stack, the container entrypoint)."""
