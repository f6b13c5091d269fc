/* placeholder main replaced by the benchmark */
int main(void) { return 0; }
