from postlab.cli import main

main()
