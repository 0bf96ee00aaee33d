"""MindGym runners: one Hydra script per task family over a shared training loop.

    python -m runners.maze | runners.recall | runners.generation   train (config groups in runners/conf/)
    python -m runners.evaluate checkpoint=PATH                      evaluate checkpoints side by side
    python -m bench.runner_throughput --device cuda                 step throughput of each runner

See docs/runners.md.
"""
