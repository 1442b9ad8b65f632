from snncompile.cli import main

raise SystemExit(main())
