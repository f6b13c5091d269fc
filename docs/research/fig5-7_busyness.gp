# cellsim plot: Figs. 5-7 (b) of the Omega paper (EuroSys 2013)
set terminal pngcairo size 900,560 noenhanced
set output "fig5-7_busyness.png"
set title "Scheduler busyness against t_job(service)"
set xlabel "t_job(service) [s]"
set ylabel "busyness (median of daily values)"
set logscale x 10
set key below
set grid
set yrange [0:*]
$s0 << EOD
0.01 0.05553912036
0.1 0.0687224537
1 0.200555787
10 0.9997831595
100 0.9997831595
EOD
$s1 << EOD
0.01 0.05553912036
0.1 0.0687224537
1 0.200555787
10 0.9997831595
100 0.9997831595
EOD
$s2 << EOD
0.01 0.06435162036
0.1 0.0687224537
1 0.112430787
10 0.5488137125
100 0.9994279276
EOD
$s3 << EOD
0.01 0.06435162036
0.1 0.0687224537
1 0.112430787
10 0.5488137125
100 0.9994279276
EOD
$s4 << EOD
0.01 0.06143287037
0.1 0.06143287037
1 0.06180023148
10 0.0951761574
100 0.9681904186
EOD
$s5 << EOD
0.01 0.002922453701
0.1 0.00730162037
1 0.05099791665
10 0.4878775088
100 0.9992554739
EOD
$s6 << EOD
0.01 0.06145231481
0.1 0.06145231481
1 0.06144259259
10 0.06144768518
100 0.06144259259
EOD
$s7 << EOD
0.01 0.002919675923
0.1 0.007294675926
1 0.05123078702
10 0.503163481
100 0.9992557053
EOD
plot $s0 using 1:2 with linespoints title "architecture=monolithic batch", \
     $s1 using 1:2 with linespoints dashtype 2 title "architecture=monolithic service", \
     $s2 using 1:2 with linespoints title "architecture=multipath batch", \
     $s3 using 1:2 with linespoints dashtype 2 title "architecture=multipath service", \
     $s4 using 1:2 with linespoints title "architecture=mesos batch", \
     $s5 using 1:2 with linespoints dashtype 2 title "architecture=mesos service", \
     $s6 using 1:2 with linespoints title "architecture=omega batch", \
     $s7 using 1:2 with linespoints dashtype 2 title "architecture=omega service"
