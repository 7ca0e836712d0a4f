from gam_bench.cli.main import entry

entry()
