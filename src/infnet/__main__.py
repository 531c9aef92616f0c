from infnet.cli import main

raise SystemExit(main())
