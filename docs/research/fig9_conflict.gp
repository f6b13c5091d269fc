# cellsim plot: Fig. 9 (a) of the Omega paper (EuroSys 2013)
set terminal pngcairo size 900,560 noenhanced
set output "fig9_conflict.png"
set title "Omega: batch conflict fraction against batch schedulers"
set xlabel "batch schedulers"
set ylabel "conflict fraction (median of daily values)"
set logscale x 2
set key below
set grid
set yrange [0:*]
$s0 << EOD
1 0.002364066194
2 0.02789598109
4 0.03735224586
8 0.04869976359
16 0.04586288416
32 0.04255319149
EOD
$s1 << EOD
1 0.02291978077
2 0.1519886364
4 0.1955492424
8 0.2204351939
16 0.2388836329
32 0.2393566698
EOD
plot $s0 using 1:2 with linespoints title "t_job_batch=1 batch", \
     $s1 using 1:2 with linespoints title "t_job_batch=10 batch"
