"""The project's benchmarks as code: `python -m benchmarks.speed`, `python -m benchmarks.gpu_step` from the repository
root (`make benchmark-speed`). Their results live as text beside them (JSON and markdown, see README.md here)."""
