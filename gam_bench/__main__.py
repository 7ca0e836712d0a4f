from gam_bench.cli.main import main

raise SystemExit(main())
