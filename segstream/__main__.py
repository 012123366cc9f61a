from segstream.cli import main

main()
