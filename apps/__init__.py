"""The applications that stand on the whole house: each imports iqrl (training), analysis (figures and
published tables) and slurm (sweeps), and nothing below imports them.

    demo.py      `make demo`: iqrl and td3 trained briefly on the CPU, drawn beside the published curves
    gpu_report/  `make gpu-report`: what a GPU machine runs first, its committed results, their doc section
"""
