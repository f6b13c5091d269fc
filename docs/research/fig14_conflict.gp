# cellsim plot: Fig. 14 (a) of the Omega paper (EuroSys 2013)
set terminal pngcairo size 900,560 noenhanced
set output "fig14_conflict.png"
set title "Service conflict fraction: fine/coarse x incremental/gang"
set xlabel "t_job(service) [s]"
set ylabel "conflict fraction (median of daily values)"
set logscale x 10
set key below
set grid
set yrange [0:*]
$s0 << EOD
0.1 0.0009532888465
1 0.004766444233
10 0.03544061303
100 0.2797619048
EOD
$s1 << EOD
0.1 0.00285986654
1 0.007626310772
10 0.05157593123
100 0.2797619048
EOD
$s2 << EOD
0.1 0.006673021926
1 0.02192564347
10 0.2025072324
100 2.071428571
EOD
$s3 << EOD
0.1 0.005719733079
1 0.02383222116
10 0.2686424474
100 2.839285714
EOD
plot $s0 using 1:2 with linespoints title "conflict=fine commit=incremental service", \
     $s1 using 1:2 with linespoints title "conflict=fine commit=gang service", \
     $s2 using 1:2 with linespoints title "conflict=coarse commit=incremental service", \
     $s3 using 1:2 with linespoints title "conflict=coarse commit=gang service"
