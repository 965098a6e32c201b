from kplane.cli.main import main

main()
