from grading.student_lab import main

main()
