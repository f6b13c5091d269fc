# cellsim plot: Fig. 14 (b) of the Omega paper (EuroSys 2013)
set terminal pngcairo size 900,560 noenhanced
set output "fig14_busyness.png"
set title "Service busyness: fine/coarse x incremental/gang"
set xlabel "t_job(service) [s]"
set ylabel "busyness (median of daily values)"
set logscale x 10
set key below
set grid
set yrange [0:*]
$s0 << EOD
0.1 0.007294675926
1 0.05123078702
10 0.503163481
100 0.9992557053
EOD
$s1 << EOD
0.1 0.007318518518
1 0.05140995368
10 0.5126461199
100 0.9992557053
EOD
$s2 << EOD
0.1 0.007324768518
1 0.05207013887
10 0.580069731
100 0.9992557053
EOD
$s3 << EOD
0.1 0.007348842592
1 0.05229513887
10 0.6182218143
100 0.9992557053
EOD
plot $s0 using 1:2 with linespoints title "conflict=fine commit=incremental service", \
     $s1 using 1:2 with linespoints title "conflict=fine commit=gang service", \
     $s2 using 1:2 with linespoints title "conflict=coarse commit=incremental service", \
     $s3 using 1:2 with linespoints title "conflict=coarse commit=gang service"
