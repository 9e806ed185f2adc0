from flowstage.cli import main

main()
