from filterprior.commands import main

raise SystemExit(main())
