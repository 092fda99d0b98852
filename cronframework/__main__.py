import sys

from cronframework.cli import main

sys.exit(main())
