from energybench.cli import main

main()
