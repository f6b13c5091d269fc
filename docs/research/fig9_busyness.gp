# cellsim plot: Fig. 9 (b) of the Omega paper (EuroSys 2013)
set terminal pngcairo size 900,560 noenhanced
set output "fig9_busyness.png"
set title "Omega: batch busyness against batch schedulers"
set xlabel "batch schedulers"
set ylabel "busyness (median of daily values, mean of schedulers)"
set logscale x 2
set key below
set grid
set yrange [0:*]
$s0 << EOD
1 0.1497905092
2 0.07615810185
4 0.03831371527
8 0.01929586227
16 0.009630598958
32 0.00480516493
EOD
$s1 << EOD
1 0.9997831595
2 0.5891237119
4 0.3053163256
8 0.1557971224
16 0.07902882738
32 0.03952927914
EOD
plot $s0 using 1:2 with linespoints title "t_job_batch=1 batch", \
     $s1 using 1:2 with linespoints title "t_job_batch=10 batch"
