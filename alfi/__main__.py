import sys

from alfi.cli import main

sys.exit(main())
