from conf_cli.cli import main

main()
