from soniq.cli import main

main()
