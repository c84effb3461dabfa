from filterprior.cli import main

raise SystemExit(main())
