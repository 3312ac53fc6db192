from delegauth.cli import main

raise SystemExit(main())
