from drumtx.cli import main

raise SystemExit(main())
