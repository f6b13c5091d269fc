# cellsim plot: Figs. 5-7 (a) of the Omega paper (EuroSys 2013)
set terminal pngcairo size 900,560 noenhanced
set output "fig5-7_wait.png"
set title "Mean job wait time against t_job(service)"
set xlabel "t_job(service) [s]"
set ylabel "mean job wait time [s]"
set logscale x 10
set key below
set grid
set logscale y 10
set yrange [*:*]
set format y "%g"
$s0 << EOD
0.01 0.0235898008
0.1 0.02931428594
1 0.1806400473
10 3772.07876
100 10134.92233
EOD
$s1 << EOD
0.01 0.03627684725
0.1 0.04407054306
1 0.2107497295
10 3898.071626
100 10284.10697
EOD
$s2 << EOD
0.01 0.02904034273
0.1 0.02931428594
1 0.06129813618
10 5.311037732
100 8607.337004
EOD
$s3 << EOD
0.01 0.04313429187
0.1 0.04407054306
1 0.0798052676
10 4.97613369
100 8711.847005
EOD
$s4 << EOD
0.01 0.0303178841
0.1 0.03076724103
1 0.0637176391
10 2.032070158
100 588.1476746
EOD
$s5 << EOD
0.01 0.03835486207
0.1 0.03933921568
1 0.07412741314
10 4.330807758
100 8683.142243
EOD
$s6 << EOD
0.01 0.02895425032
0.1 0.02895425032
1 0.02895425032
10 0.02895425032
100 0.02895425032
EOD
$s7 << EOD
0.01 5.144207722e-05
0.1 0.0006445092803
1 0.03391371126
10 4.336152269
100 8688.071613
EOD
plot $s0 using 1:2 with linespoints title "architecture=monolithic batch", \
     $s1 using 1:2 with linespoints dashtype 2 title "architecture=monolithic service", \
     $s2 using 1:2 with linespoints title "architecture=multipath batch", \
     $s3 using 1:2 with linespoints dashtype 2 title "architecture=multipath service", \
     $s4 using 1:2 with linespoints title "architecture=mesos batch", \
     $s5 using 1:2 with linespoints dashtype 2 title "architecture=mesos service", \
     $s6 using 1:2 with linespoints title "architecture=omega batch", \
     $s7 using 1:2 with linespoints dashtype 2 title "architecture=omega service"
