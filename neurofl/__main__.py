from neurofl.cli import main

main()
