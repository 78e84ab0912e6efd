import sys

from bayesfm.cli.main import main

sys.exit(main())
