from morphbias_fast.cli import main

main(prog_name="morphbias-fast")
