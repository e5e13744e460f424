"""The chapters' interactive demos: the framework (``base``) and one module per chapter (``ch1`` .. ``ch4``) with
each demo's builder and the function that computes its inputs. A chapter imports its own:
``from course_lib.demos import ch1 as demos``.
"""
