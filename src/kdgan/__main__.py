from kdgan.cli import main

raise SystemExit(main())
