"""Checkers for the chapters' exercises, one module per chapter (``ch1`` .. ``ch4``); each compares a student's
function with the course's reference on random inputs and explains what is wrong, recognising the usual mistakes.
A chapter imports its own: ``from course_lib.exercises import ch1 as exercises``.
"""
