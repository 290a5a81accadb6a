import sys

from modelcollapse.cli import main

sys.exit(main())
