from segstream.cli.main import main

main()
