"""How a cell is measured: wall time (timing), peak memory (memory), FLOPs (flops), and
the machine it ran on (environment). Each module holds one concept; all are device-generic.
"""
