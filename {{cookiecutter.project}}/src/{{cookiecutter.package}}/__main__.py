from .orchestration.cli import main

raise SystemExit(main())
