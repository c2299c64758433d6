import sys

from brix.cli import main

sys.exit(main())
