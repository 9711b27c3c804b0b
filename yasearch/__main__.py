from yasearch.cli import main

raise SystemExit(main())
