from tlsgate.cli import main

raise SystemExit(main())
