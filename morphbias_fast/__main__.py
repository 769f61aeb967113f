from morphbias_fast.launcher import main

main(prog_name="morphbias-fast")
